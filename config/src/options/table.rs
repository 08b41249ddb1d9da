use super::*; pub(super) static OPTIONS: &[OptionSpec] = &[];
