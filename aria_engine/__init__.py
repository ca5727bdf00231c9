"""ARIA engine: image -> emotion -> music -> audio and pictures. No chat-platform imports."""

__version__ = "0.1.0"
