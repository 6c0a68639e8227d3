"""The canon's models as they were before the canon became an app of its own: the proxy app's
(label ``shubproxy``), with its one migration, copied verbatim. Only for building a database
the way the code of that time did, to prove that ``migrate`` alone moves it over."""
