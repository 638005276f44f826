"""Tools beside the service (never imported by it): the test harness, round trip, load test, study, benchmarks."""
