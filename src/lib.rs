//! netstrata facade.
