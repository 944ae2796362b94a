"""The Python operators of the streaming job, in the order an event meets them."""
