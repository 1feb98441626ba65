"""``python -m ecg_core <command>``: see :mod:`ecg_core.cli`."""

from ecg_core.cli import main

raise SystemExit(main())
