"""One cog per feature: composing, result buttons, the queue, help and server administration."""
