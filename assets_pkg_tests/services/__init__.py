"""Real servers for the tests and benchmarks, started from the project's own installed
packages on 127.0.0.1 and free ports, in temp folders, and stopped afterwards."""
