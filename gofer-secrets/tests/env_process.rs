//! `EnvSecretStore` over the real process environment (its own test binary, so no
//! other test reads the environment while this one sets it).

use gofer_core::SecretStore;
use gofer_secrets::EnvSecretStore;
use secrecy::ExposeSecret;

#[test]
fn reads_the_process_environment_with_a_prefix() {
    // Set before any other thread exists in this binary.
    std::env::set_var("GOFERTESTENV_SECRET_env-pipe__TOKEN", "from-the-process");
    std::env::set_var("GOFERTESTENV_GLOBAL_SECRET_SHARED", "shared-value");
    std::env::set_var("GOFERTESTENV_GLOBAL_ALLOW_SHARED", "env-*");
    let store = EnvSecretStore::from_process_env_with_prefix("GOFERTESTENV");
    let default_prefix = EnvSecretStore::from_process_env();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let v = store
            .get_pipeline_secret("env-pipe", "TOKEN")
            .await
            .expect("pipeline secret");
        assert_eq!(v.expose_secret(), "from-the-process");
        let v = store
            .get_global_secret("env-pipe", "SHARED")
            .await
            .expect("global secret");
        assert_eq!(v.expose_secret(), "shared-value");
        assert!(default_prefix
            .get_pipeline_secret("env-pipe", "TOKEN")
            .await
            .expect_err("other prefix")
            .is_not_found());
    });
    // Read once: later changes are not seen.
    std::env::set_var("GOFERTESTENV_SECRET_env-pipe__LATER", "later");
    rt.block_on(async {
        assert!(store
            .get_pipeline_secret("env-pipe", "LATER")
            .await
            .expect_err("snapshot")
            .is_not_found());
    });
}
