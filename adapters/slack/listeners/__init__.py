"""The Slack app's listeners, one module per feature (as the Discord cogs are). Each class takes
the adapter and registers its bolt lazy listeners with `register(app)`; the fallbacks come last,
so that they only catch what nothing else did."""

from adapters.slack.listeners.admin import Admin
from adapters.slack.listeners.command import Command
from adapters.slack.listeners.compose import Compose
from adapters.slack.listeners.extend import Extend
from adapters.slack.listeners.fallbacks import Fallbacks
from adapters.slack.listeners.jam import JamListener
from adapters.slack.listeners.members import Members
from adapters.slack.listeners.moderation import Moderation
from adapters.slack.listeners.results import Results

LISTENERS = (Compose, Results, Extend, Admin, Members, Moderation, JamListener, Command, Fallbacks)
