"""The building blocks every part of a fit uses.

A fold's state, its metric log, random stream and model; optimizer parsing; checkpoint files; statistics of fold
scores; profiling; and the one module that calls Lightning's private API.
"""
