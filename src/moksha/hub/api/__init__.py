"""The plugin API: what consumers and producers import.

``from moksha.hub.api import Consumer, Producer, PollingProducer`` works as in
the original Moksha, as do ``moksha.hub.api.consumer`` and
``moksha.hub.api.producer``.
"""

from moksha.hub.api.consumer import Consumer, Drop, Nack
from moksha.hub.api.producer import PollingProducer, Producer

__all__ = ["Consumer", "Drop", "Nack", "PollingProducer", "Producer"]
