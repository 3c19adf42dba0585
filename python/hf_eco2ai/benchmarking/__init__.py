"""Energy for benchmark suites: ``measure_energy`` for any harness, and the pytest plugin
(``pytest --energy``) that measures each test."""
