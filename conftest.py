# Root conftest: pytest puts the repository root on sys.path, so `import lib` works
# in tests; notebooks find `lib` through the editable install (`make setup`).
import lib  # noqa: F401  (importing lib keeps Keras and matplotlib caches out of $HOME)
