"""The executor agent and its broker adapters."""

from agents.executor.agent import Executor
from agents.executor.broker import Broker, Execution, Order, PaperBroker

__all__ = ["Broker", "Execution", "Executor", "Order", "PaperBroker"]
