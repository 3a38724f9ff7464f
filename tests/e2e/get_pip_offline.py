"""Stand-in for ansible-test's get-pip bootstrap script, for machines without internet access.

ansible-test creates each sanity test's virtual environment without pip and bootstraps pip by
running ``get-pip-<version>.py``, which it downloads from ci-files.testing.ansible.com unless
``~/.ansible/test/cache/get_pip_<version>.py`` exists. This script, placed there, does the same
job from what the machine has: the standard library's ensurepip installs the pip bundled with
Python, which then installs the requested packages (``pip==<version>``) through the machine's
own pip configuration (its index or mirror). ansible-test runs it as
``python get_pip.py [pip options] pip==X --no-setuptools --no-wheel``.
"""

import os
import subprocess
import sys

# get-pip.py's own switches; pip itself does not know them.
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}


def main() -> int:
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    env = dict(os.environ)
    env.pop("GET_PIP", None)
    subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"], check=True,
                   env=env, stdout=subprocess.DEVNULL)
    return subprocess.run([sys.executable, "-m", "pip", "install", *args], check=False,
                          env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
