"""The ServerApp: an odtlab strategy run by Flower (see :func:`odtlab.fl.flower.server_app`)."""

from odtlab.fl.flower import server_app

app = server_app()
