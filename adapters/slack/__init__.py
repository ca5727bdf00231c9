"""ARIA in Slack: a bolt AsyncApp over the platform-neutral `bot.service`, run over Socket Mode or
HTTP (`aria bot slack`). See README.md in this folder."""
