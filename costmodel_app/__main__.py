"""``python -m costmodel_app``: start the dashboard (same options as ``costmodel dashboard``)."""

import sys

from costmodel_app.launch import main

sys.exit(main(sys.argv[1:]))
