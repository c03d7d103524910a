"""Hypothesis settings: the project's profile (derandomised, so a CI run is reproducible; no
deadlines on shared CPUs), as sims.strategies declares it for any property test."""

from sims.strategies import use_profile

use_profile()
