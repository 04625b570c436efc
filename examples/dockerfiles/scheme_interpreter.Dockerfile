# The example project's test image for `--backend podman`. The source is not copied in: the working copy is
# mounted at /repo at run time, and the default command installs it (offline) and runs the suite.
FROM localhost/repogym-base:bookworm
WORKDIR /repo
ENV PYTHONDONTWRITEBYTECODE=1 PIP_BREAK_SYSTEM_PACKAGES=1
CMD ["sh", "-c", "pip install -q --no-deps --no-build-isolation -e /repo && python3 -m pytest -rA -p no:cacheprovider"]
