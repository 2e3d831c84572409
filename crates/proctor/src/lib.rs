//! proctor
