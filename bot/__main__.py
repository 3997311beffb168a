from bot.cli import main

if __name__ == "__main__":  # pragma: no cover - entry point
    raise SystemExit(main())
