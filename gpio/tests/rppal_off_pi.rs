//! The rppal back end off a Raspberry Pi: opening fails with an error naming the GPIO chip, and nothing panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "rppal")]
#[test]
fn opening_off_a_pi_names_the_gpio_chip() {
    use keymother_gpio::{GpioError, Pins, RppalSignals};
    let is_pi = std::fs::read_to_string("/sys/firmware/devicetree/base/model")
        .is_ok_and(|model| model.contains("Raspberry Pi"));
    match RppalSignals::open(&Pins::default()) {
        Err(GpioError::Open { chip, reason }) => {
            let message = GpioError::Open {
                chip: chip.clone(),
                reason: reason.clone(),
            }
            .to_string();
            assert!(message.contains("cannot open the GPIO chip"), "{message}");
            assert!(chip.contains("gpio"), "{chip}");
            assert!(!reason.is_empty());
        }
        Err(other) => assert!(is_pi, "off a Pi the chip itself fails: {other}"),
        Ok(_) => assert!(is_pi, "the rppal back end opened off a Raspberry Pi"),
    }
}
