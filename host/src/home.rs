//! `$CLAUDERON_HOME`: where every host file lives, and writing private files atomically.
