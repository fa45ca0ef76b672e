"""Peers: other libraries' trainers (Surprise, LIBMF, implicit) run as strategies of their own."""
