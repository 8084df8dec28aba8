//! Relative links in README.md and docs/ point to files and anchors that exist.
