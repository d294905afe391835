"""The ClientApp: an odtlab client per SuperNode (see :func:`odtlab.fl.flower.client_app`)."""

from odtlab.fl.flower import client_app

app = client_app()
