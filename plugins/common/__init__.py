"""Helpers several built-in plugins share. Nothing here is a plugin: no module registers parts."""
