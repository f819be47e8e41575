"""``python -m dictaphone`` and the ``dictaphone`` console script.

Stop signals are caught before anything heavy is imported (see stopsignals.py): this
module and stopsignals import only os and signal before catch_early() runs.
"""

from dictaphone.stopsignals import catch_early


def run() -> None:
    catch_early()
    from dictaphone.cli import main

    main()


if __name__ == "__main__":
    run()
