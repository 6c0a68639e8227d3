import argparse

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the shub stand-in upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8007)
    args = parser.parse_args()
    uvicorn.run(
        "standin.app:app", host=args.host, port=args.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
