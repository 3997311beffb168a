"""The organisers' dashboard under ``/admin`` (see INTERFACES.md, "Organiser dashboard (v1)")."""
