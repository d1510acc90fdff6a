"""The merchant checkout demo: a small shop page showing StepPay's three pay-page modes.

``steppay_demo.server.DemoServer`` serves ``demo/site/`` (plain HTML, CSS and JavaScript), a
``/config.json`` for the page, the sandbox catalogue as ``/catalogue.json`` and a live feed of the
events on the local EventBridge bus (``/events``).
"""
