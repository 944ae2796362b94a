"""The console's routes, one router per resource: the JSON API (`api`), its reference page (`docs`), sign-in and
sign-out (`sessions`), the review pages (`pages`) and the probes' `health`. What they share (the app's services,
who is asking, rendering) is in `deps`."""
