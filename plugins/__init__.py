"""mfbench's built-in plugins, installed as ``mfbench.plugins``.

Each module here is an ordinary plugin: it implements mfbench hooks with
``@mfbench.hookimpl``, exactly as a third-party plugin would. The core names
them in one place only, the DEFAULT_PLUGINS tuple of the plugin-manager factory.
"""
