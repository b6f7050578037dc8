"""The local web app behind ``unires serve`` (needs the ``app`` extra: ``pip install unires[app]``).

``logic`` holds the decisions (weights, uploads, results) and imports no Gradio; ``server``
builds and runs the Gradio page.
"""

# CPU restoration time grows with the output area: cap it for a shared server.
DEFAULT_MAX_OUTPUT_MEGAPIXELS = 4.0
