"""The bot: settings, policy and quotas, persistence, the reply model and the `aria` CLI."""
