"""Stateful fakes of the systems KOM talks to, faithful to their documented and observed rules."""
