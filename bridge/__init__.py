"""The HTTP bridge: the seed service's HTTP contract in front of the ZMQ engine."""
