//! The example environment of `examples/auth.yaml`, kept once in `examples/auth.env` (the
//! file `.ci/run` also reads), so the tour, the guide's test and CI give the config the same
//! values.

/// The lines of `examples/auth.env`, as compiled in.
const AUTH_ENV: &str = include_str!("../../examples/auth.env");

/// The value `examples/auth.env` gives `name`, for `AuthBuilder::from_yaml_str_with_env`.
pub fn example_env(name: &str) -> Option<String> {
    example_env_pairs()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// Every `NAME=value` pair of `examples/auth.env`, for a child process's environment.
pub fn example_env_pairs() -> impl Iterator<Item = (&'static str, &'static str)> {
    AUTH_ENV
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
}
