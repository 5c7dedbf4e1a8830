"""A class on one server: the roster (students, their hashed tokens, the class's settings) kept
in the runs folder, and the limit on wrong class codes. No HTTP here: ``web.classroom`` and
``web.access`` answer requests with it."""
