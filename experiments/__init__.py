"""Named experiments: each a configuration (declared with :mod:`sims.schema`) and the
functions that compute its units of work and summarise them, run by one command into a run
folder (:mod:`sims.experiment`). Not installed with the package: run from the checkout,
``python -m experiments list`` and ``python -m experiments run NAME [flags]``."""
