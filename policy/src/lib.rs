//! opkssh server policy.
