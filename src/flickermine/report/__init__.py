"""Pictures and pages a person reviews."""
