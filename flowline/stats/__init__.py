"""Flow statistics: the significance maths of A/B splits and the report built from stored counts."""
