//! Each message's payload layout: [`Message::encode_payload`] and [`Message::decode`], one writer and one reader per message type.

use crate::codes::{AbortReason, ErrorCode};
use crate::frame::MAX_PAYLOAD_LENGTH;

use super::codec::{Reader, Writer};
use super::{
    Abort, Capabilities, Confirm, Confirmed, DecodeError, Delivery, DukptConfirm, DukptConfirmed,
    DukptDelivery, DukptRequest, EncodeError, ErrorMessage, Field, FieldProblem, Hello, KeyRequest,
    MAX_DETAIL_LENGTH, MAX_DEVICE_ID_LENGTH, MAX_KEY_BLOCK_LENGTH, MAX_MODE_IDS, Message,
    MessageType, PROTOCOL_VERSION, Welcome,
};

const MODE_COUNT: &str = "1 to 32 mode ids";
const MODEL_LENGTH: &str = "1 to 32 characters";
const SERIAL_LENGTH: &str = "1 to 24 characters";
const SMN_LENGTH: &str = "9 to 32 characters";
const DEVICE_ID_LENGTH: &str = "1 to 32 characters";
const DETAIL_LENGTH: &str = "0 to 200 characters";
const KEY_BLOCK_LENGTH: &str = "16 to 4082 characters";
const PAYLOAD_LENGTH: &str = "at most 4094 bytes";

impl Message {
    /// The payload bytes of this message (the frame's TYPE byte is [`message_type`](Self::message_type)).
    pub fn encode_payload(&self) -> Result<Vec<u8>, EncodeError> {
        let mut writer = Writer::new(self.message_type());
        match self {
            Message::Hello(hello) => hello.write(&mut writer)?,
            Message::KeyRequest(request) => request.write(&mut writer)?,
            Message::Confirm(confirm) => confirm.write(&mut writer)?,
            Message::Abort(abort) => abort.write(&mut writer)?,
            Message::Welcome(welcome) => welcome.write(&mut writer)?,
            Message::KeyDelivery(delivery) => delivery.write(&mut writer)?,
            Message::Confirmed(confirmed) => confirmed.write(&mut writer)?,
            Message::Error(error) => error.write(&mut writer)?,
            Message::DukptRequest(request) => request.write(&mut writer)?,
            Message::DukptDelivery(delivery) => delivery.write(&mut writer)?,
            Message::DukptConfirm(confirm) => confirm.write(&mut writer)?,
            Message::DukptConfirmed(confirmed) => confirmed.write(&mut writer)?,
            Message::Ack | Message::Nak => {}
        }
        if writer.bytes.len() > MAX_PAYLOAD_LENGTH {
            return Err(writer.error(
                Field::Payload,
                FieldProblem::Length {
                    found: writer.bytes.len(),
                    allowed: PAYLOAD_LENGTH,
                },
            ));
        }
        Ok(writer.bytes)
    }

    /// Decodes the payload of a frame whose TYPE byte is `message_type`.
    pub fn decode(message_type: u8, payload: &[u8]) -> Result<Message, DecodeError> {
        let kind =
            MessageType::from_id(message_type).ok_or(DecodeError::UnknownType(message_type))?;
        if payload.len() > MAX_PAYLOAD_LENGTH {
            return Err(DecodeError::Field {
                message: kind,
                field: Field::Payload,
                problem: FieldProblem::Length {
                    found: payload.len(),
                    allowed: PAYLOAD_LENGTH,
                },
            });
        }
        let mut reader = Reader {
            message: kind,
            bytes: payload,
        };
        let message = match kind {
            MessageType::Hello => Message::Hello(Hello::read(&mut reader)?),
            MessageType::KeyRequest => Message::KeyRequest(KeyRequest::read(&mut reader)?),
            MessageType::Confirm => Message::Confirm(Confirm::read(&mut reader)?),
            MessageType::Abort => Message::Abort(Abort::read(&mut reader)?),
            MessageType::Welcome => Message::Welcome(Welcome::read(&mut reader)?),
            MessageType::KeyDelivery => Message::KeyDelivery(Delivery::read(&mut reader)?),
            MessageType::Confirmed => Message::Confirmed(Confirmed::read(&mut reader)?),
            MessageType::Error => Message::Error(ErrorMessage::read(&mut reader)?),
            MessageType::Ack => Message::Ack,
            MessageType::Nak => Message::Nak,
            MessageType::DukptRequest => Message::DukptRequest(DukptRequest::read(&mut reader)?),
            MessageType::DukptDelivery => Message::DukptDelivery(DukptDelivery::read(&mut reader)?),
            MessageType::DukptConfirm => Message::DukptConfirm(DukptConfirm::read(&mut reader)?),
            MessageType::DukptConfirmed => {
                Message::DukptConfirmed(DukptConfirmed::read(&mut reader)?)
            }
        };
        reader.finish()?;
        Ok(message)
    }
}

impl Hello {
    fn write(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        writer.u8(self.protocol_version);
        writer.counted(Field::ModeIds, &self.mode_ids, 1, MAX_MODE_IDS, MODE_COUNT)?;
        writer.text(Field::Model, self.model.as_str(), 1, 32, MODEL_LENGTH)?;
        writer.text(
            Field::HardwareSerial,
            self.hardware_serial.as_str(),
            1,
            24,
            SERIAL_LENGTH,
        )?;
        writer.u16(self.capabilities.bits());
        Ok(())
    }

    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol_version = reader.u8(Field::ProtocolVersion)?;
        if protocol_version != PROTOCOL_VERSION {
            // A later version may lay out the rest differently: stop here.
            return Err(DecodeError::UnsupportedVersion(protocol_version));
        }
        let mode_ids = reader
            .counted(
                Field::ModeCount,
                Field::ModeIds,
                1,
                MAX_MODE_IDS,
                MODE_COUNT,
            )?
            .to_vec();
        let model = reader.parsed(Field::ModelLength, Field::Model, 1, 32, MODEL_LENGTH)?;
        let hardware_serial = reader.parsed(
            Field::SerialLength,
            Field::HardwareSerial,
            1,
            24,
            SERIAL_LENGTH,
        )?;
        let capabilities = Capabilities::from_bits(reader.u16(Field::Capabilities)?);
        Ok(Hello {
            protocol_version,
            mode_ids,
            model,
            hardware_serial,
            capabilities,
        })
    }
}

impl KeyRequest {
    fn write(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        writer.u8(self.mode_id);
        writer.mode_data(self.mode_id, &self.mode_data)
    }

    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mode_id = reader.u8(Field::Mode)?;
        let mode_data = reader.mode_data(mode_id);
        Ok(KeyRequest { mode_id, mode_data })
    }
}

impl Confirm {
    fn write(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        writer.key_index(self.key_index)?;
        writer.kcv(Field::Kcv, &self.kcv)?;
        writer.text(Field::Smn, self.smn.as_str(), 9, 32, SMN_LENGTH)
    }

    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let key_index = reader.key_index()?;
        let kcv = reader.kcv(Field::KcvLength, Field::Kcv)?;
        let smn = reader.parsed(Field::SmnLength, Field::Smn, 9, 32, SMN_LENGTH)?;
        Ok(Confirm {
            key_index,
            kcv,
            smn,
        })
    }
}

impl Abort {
    fn write(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        writer.u8(self.reason.0);
        writer.text(
            Field::Detail,
            &self.detail,
            0,
            MAX_DETAIL_LENGTH,
            DETAIL_LENGTH,
        )
    }

    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let reason = AbortReason(reader.u8(Field::Reason)?);
        let detail = reader.text(
            Field::DetailLength,
            Field::Detail,
            0,
            MAX_DETAIL_LENGTH,
            DETAIL_LENGTH,
        )?;
        Ok(Abort { reason, detail })
    }
}

impl Welcome {
    fn write(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        writer.u8(self.protocol_version);
        writer.u8(self.mode_id);
        writer.text(
            Field::DeviceId,
            &self.device_id,
            1,
            MAX_DEVICE_ID_LENGTH,
            DEVICE_ID_LENGTH,
        )?;
        writer.kcv(Field::TtkKcv, &self.ttk_kcv)?;
        writer.mode_data(self.mode_id, &self.mode_data)
    }

    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let protocol_version = reader.u8(Field::ProtocolVersion)?;
        let mode_id = reader.u8(Field::Mode)?;
        let device_id = reader.text(
            Field::DeviceIdLength,
            Field::DeviceId,
            1,
            MAX_DEVICE_ID_LENGTH,
            DEVICE_ID_LENGTH,
        )?;
        let ttk_kcv = reader.kcv(Field::TtkKcvLength, Field::TtkKcv)?;
        let mode_data = reader.mode_data(mode_id);
        Ok(Welcome {
            protocol_version,
            mode_id,
            device_id,
            ttk_kcv,
            mode_data,
        })
    }
}

impl Delivery {
    fn write(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        writer.key_index(self.key_index)?;
        writer.key_block(&self.key_block, MAX_KEY_BLOCK_LENGTH, KEY_BLOCK_LENGTH)?;
        writer.kcv(Field::Kcv, &self.kcv)?;
        writer.bytes.extend_from_slice(&self.mode_data);
        Ok(())
    }

    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let key_index = reader.key_index()?;
        let key_block = reader.key_block(MAX_KEY_BLOCK_LENGTH, KEY_BLOCK_LENGTH)?;
        let kcv = reader.kcv(Field::KcvLength, Field::Kcv)?;
        // The mode is the session's, not in the message: the terminal checks that tr31
        // deliveries carry none.
        let mode_data = std::mem::take(&mut reader.bytes).to_vec();
        Ok(Delivery {
            key_index,
            key_block,
            kcv,
            mode_data,
        })
    }
}

impl Confirmed {
    fn write(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        writer.key_index(self.key_index)?;
        writer.text(Field::Smn, self.smn.as_str(), 9, 32, SMN_LENGTH)
    }

    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let key_index = reader.key_index()?;
        let smn = reader.parsed(Field::SmnLength, Field::Smn, 9, 32, SMN_LENGTH)?;
        Ok(Confirmed { key_index, smn })
    }
}

impl ErrorMessage {
    fn write(&self, writer: &mut Writer) -> Result<(), EncodeError> {
        writer.u16(self.code.0);
        writer.text(
            Field::Detail,
            &self.detail,
            0,
            MAX_DETAIL_LENGTH,
            DETAIL_LENGTH,
        )
    }

    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let code = ErrorCode(reader.u16(Field::Code)?);
        let detail = reader.text(
            Field::DetailLength,
            Field::Detail,
            0,
            MAX_DETAIL_LENGTH,
            DETAIL_LENGTH,
        )?;
        Ok(ErrorMessage { code, detail })
    }
}
