//! Human durations as apimachinery's `duration.HumanDuration` prints them. (skeleton: owned by the tables helper)
