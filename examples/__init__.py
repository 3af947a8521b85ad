"""rlnas examples: a user's own search space (my_space.py, named in configs as
``examples.my_space:SPACE``) and the Python API end to end (api_example.py)."""
