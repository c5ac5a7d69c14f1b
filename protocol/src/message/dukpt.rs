//! Profile mode's four DUKPT messages (DUKPT_REQUEST, DUKPT_DELIVERY, DUKPT_CONFIRM, DUKPT_CONFIRMED): their payloads and byte layouts.

use crate::frame::MAX_PAYLOAD_LENGTH;

use super::codec::{Reader, Writer};
use super::{DecodeError, EncodeError, Field, FieldProblem};

/// Length of a TDES DUKPT initial KSN (ANSI X9.24-1): key set identifier, device ID, counter.
pub const TDES_KSN_LENGTH: usize = 10;
/// Length of an AES DUKPT initial key ID (ANSI X9.24-3): BDK ID and derivation ID.
pub const AES_INITIAL_KEY_ID_LENGTH: usize = 8;
/// Longest key block in DUKPT_DELIVERY: what fits in a frame beside the other fields at their
/// longest (a 10-byte KSN and a 5-byte KCV).
pub const MAX_DUKPT_KEY_BLOCK_LENGTH: usize =
    MAX_PAYLOAD_LENGTH - 1 - 1 - TDES_KSN_LENGTH - 2 - 1 - 5;

const KSN_LENGTHS: &str = "10 (TDES DUKPT: the initial KSN) or 8 (AES DUKPT: the initial key ID)";
const DUKPT_KEY_BLOCK_LENGTH: &str = "16 to 4074 characters";

/// DUKPT_REQUEST: the terminal asks for the initial key of one slot of the session's profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DukptRequest {
    pub slot: u8,
}

/// DUKPT_DELIVERY (the adapter's answer to a DUKPT reservation, and the message carrying it):
/// the slot, the initial KSN (TDES) or initial key ID (AES), the initial key as a TR-31 key
/// block under the transport key, and the initial key's KCV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DukptDelivery {
    pub slot: u8,
    /// 10 bytes (TDES DUKPT) or 8 (AES DUKPT).
    pub ksn: Vec<u8>,
    pub key_block: String,
    pub kcv: Vec<u8>,
}

/// DUKPT_CONFIRM: the terminal installed a slot's initial key and reports its check value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DukptConfirm {
    pub slot: u8,
    pub ksn: Vec<u8>,
    pub kcv: Vec<u8>,
}

/// DUKPT_CONFIRMED: the appliance recorded the injection of a slot's initial key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DukptConfirmed {
    pub slot: u8,
    pub ksn: Vec<u8>,
}

/// A KSN field's length is one of the two DUKPT kinds'.
fn check_ksn_length(length: usize) -> Result<(), FieldProblem> {
    match length {
        TDES_KSN_LENGTH | AES_INITIAL_KEY_ID_LENGTH => Ok(()),
        found => Err(FieldProblem::Length {
            found,
            allowed: KSN_LENGTHS,
        }),
    }
}

impl Writer {
    fn ksn(&mut self, ksn: &[u8]) -> Result<(), EncodeError> {
        check_ksn_length(ksn.len()).map_err(|problem| self.error(Field::Ksn, problem))?;
        self.counted(
            Field::Ksn,
            ksn,
            AES_INITIAL_KEY_ID_LENGTH,
            TDES_KSN_LENGTH,
            KSN_LENGTHS,
        )
    }
}

impl Reader<'_> {
    fn ksn(&mut self) -> Result<Vec<u8>, DecodeError> {
        let length = usize::from(self.u8(Field::KsnLength)?);
        check_ksn_length(length).map_err(|problem| self.error(Field::KsnLength, problem))?;
        Ok(self.take(length, Field::Ksn)?.to_vec())
    }
}

impl DukptRequest {
    pub(super) fn write(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        writer.u8(self.slot);
        Ok(())
    }

    pub(super) fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let slot = reader.u8(Field::Slot)?;
        Ok(DukptRequest { slot })
    }
}

impl DukptDelivery {
    pub(super) fn write(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        writer.u8(self.slot);
        writer.ksn(&self.ksn)?;
        writer.key_block(
            &self.key_block,
            MAX_DUKPT_KEY_BLOCK_LENGTH,
            DUKPT_KEY_BLOCK_LENGTH,
        )?;
        writer.kcv(Field::Kcv, &self.kcv)
    }

    pub(super) fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let slot = reader.u8(Field::Slot)?;
        let ksn = reader.ksn()?;
        let key_block = reader.key_block(MAX_DUKPT_KEY_BLOCK_LENGTH, DUKPT_KEY_BLOCK_LENGTH)?;
        let kcv = reader.kcv(Field::KcvLength, Field::Kcv)?;
        Ok(DukptDelivery {
            slot,
            ksn,
            key_block,
            kcv,
        })
    }
}

impl DukptConfirm {
    pub(super) fn write(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        writer.u8(self.slot);
        writer.ksn(&self.ksn)?;
        writer.kcv(Field::Kcv, &self.kcv)
    }

    pub(super) fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let slot = reader.u8(Field::Slot)?;
        let ksn = reader.ksn()?;
        let kcv = reader.kcv(Field::KcvLength, Field::Kcv)?;
        Ok(DukptConfirm { slot, ksn, kcv })
    }
}

impl DukptConfirmed {
    pub(super) fn write(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        writer.u8(self.slot);
        writer.ksn(&self.ksn)
    }

    pub(super) fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let slot = reader.u8(Field::Slot)?;
        let ksn = reader.ksn()?;
        Ok(DukptConfirmed { slot, ksn })
    }
}
