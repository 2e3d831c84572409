pub(crate) mod futex;
pub(crate) mod memfd;
