"""The one way out of every script that drives libtorrent (python3-libtorrent).

python3-libtorrent 2.0.8 can crash with signal 11 when a session is destroyed
while alerts, torrent handles or torrent_info objects are still alive, and
most often on a loaded machine. Python destroys them in no fixed order: when
the function holding them returns, and again at interpreter shutdown. So a
helper must never let that happen:

- keep(ses) holds the session until the process ends, so returning from the
  function that made it never runs the session's destructor;
- finish(code) flushes stdout and stderr, then ends the process at once with
  os._exit: no destructor, atexit hook or interpreter shutdown runs, and
  libtorrent's threads stop with the process. The kernel closes its sockets
  and files; what libtorrent wrote is already in the page cache.
- run(main) calls main() and ends through finish() whatever happens: the
  code main returns, sys.exit (argparse errors too), an exception (its
  traceback on stderr, status 1), or SIGTERM/SIGINT (the tests and benches
  stop helpers by pid).

Import it from a script elsewhere in the repository with the folder added to
sys.path (see tests/support/hostile/lt_seed.py).
"""

import os
import signal
import sys
import traceback

# Sessions held until the process ends (see keep).
_kept = []
# The status SIGTERM and SIGINT end the process with (see on_signal).
_signal_status = 128 + signal.SIGTERM


def keep(session):
    """Holds `session` until finish(), so its destructor never runs; returns it."""
    _kept.append(session)
    return session


def finish(code):
    """Flushes stdout and stderr, then ends the process with status `code`."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, RuntimeError):
            # A closed pipe, a closed stream, or a flush already under way in
            # the code a signal interrupted: nothing more can be written.
            pass
    os._exit(code)


def _status(exit_code):
    """The process status for sys.exit's argument (None, an int or a message)."""
    if exit_code is None:
        return 0
    if isinstance(exit_code, int):
        return exit_code & 0xFF
    print(exit_code, file=sys.stderr)
    return 1


def on_signal(code):
    """Sets the status SIGTERM and SIGINT end the process with (see run):
    0 for a seed, whose normal end is being stopped."""
    global _signal_status
    _signal_status = code


def _stop(signum, _frame):
    try:
        print(f"{os.path.basename(sys.argv[0])}: stopped by signal {signum}",
              file=sys.stderr)
    except (OSError, ValueError, RuntimeError):
        pass  # as in finish: the line is lost, the exit is not
    finish(_signal_status)


def run(main):
    """Runs main() and ends the process through finish(), never returning.

    SIGTERM and SIGINT end it at once with the status set by on_signal (143,
    128 + SIGTERM, unless changed). A script may install its own handlers
    instead, for a stop that prints something first, as long as its main
    then returns."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        code = main()
    except SystemExit as e:
        code = _status(e.code)
    except BaseException:  # any other exception: its traceback, status 1
        traceback.print_exc()
        # Still inside the handler: main's frame (and its libtorrent
        # objects) is alive through the traceback until finish ends it all.
        finish(1)
    finish(_status(code))
