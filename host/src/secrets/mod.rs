//! Named secrets: one resolver with a documented precedence, held in a redacting type.
