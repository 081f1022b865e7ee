"""The retention room: the records of cancellation requests, save offers and
reactivations (written by the activities and the API, read by analytics and the views)."""
