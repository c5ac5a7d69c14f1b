//! SQLite conversions (feature `sqlite`): each value is stored as its text or number and checked again when read.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::{
    BatchId, BdkId, BdkName, DeviceId, DukptDeviceId, HardwareSerial, Kcv, KeyAlgorithm, KeyIndex,
    Smn, TerminalModel,
};

impl ToSql for KeyIndex {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(i64::from(*self)))
    }
}

impl FromSql for KeyIndex {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let number = i64::column_result(value)?;
        KeyIndex::try_from(number).map_err(|error| FromSqlError::Other(Box::new(error)))
    }
}

/// A device id is stored as its number, so SQL compares it with its BDK's range. It is read
/// back with [`DukptDeviceId::from_number`] and the kind of its BDK: the number alone does not
/// say whether it is a TDES or an AES id.
impl ToSql for DukptDeviceId {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(i64::from(*self)))
    }
}

/// Values stored as their text and parsed again (with every rule) when read.
macro_rules! text_column {
    ($($name:ty),*) => {$(
        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.to_string()))
            }
        }
        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse::<$name>()
                    .map_err(|error| FromSqlError::Other(Box::new(error)))
            }
        }
    )*};
}
text_column!(
    HardwareSerial,
    TerminalModel,
    Smn,
    BatchId,
    DeviceId,
    Kcv,
    KeyAlgorithm,
    BdkName,
    BdkId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_bad_rows_are_refused() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        db.execute_batch("CREATE TABLE t (i INTEGER, s TEXT, k TEXT)")
            .unwrap();
        let serial: HardwareSerial = "123L013K".parse().unwrap();
        let index = KeyIndex::new(278).unwrap();
        let smn = Smn::new(&serial, index);
        let kcv = Kcv::from_hex_any("08D7B4").unwrap();
        db.execute(
            "INSERT INTO t VALUES (?1, ?2, ?3)",
            rusqlite::params![index, smn, kcv],
        )
        .unwrap();
        let (read_index, read_smn, read_kcv): (KeyIndex, Smn, Kcv) = db
            .query_row("SELECT i, s, k FROM t", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .unwrap();
        assert_eq!((read_index, read_smn, read_kcv), (index, smn, kcv));
        db.execute_batch("UPDATE t SET i = 100000000, s = 'abc'")
            .unwrap();
        assert!(
            db.query_row("SELECT i FROM t", [], |row| row.get::<_, KeyIndex>(0))
                .is_err()
        );
        assert!(
            db.query_row("SELECT s FROM t", [], |row| row.get::<_, Smn>(0))
                .is_err()
        );
    }

    #[test]
    fn dukpt_values_are_stored_as_text_and_device_ids_as_numbers() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        db.execute_batch("CREATE TABLE t (name TEXT, id TEXT, device INTEGER)")
            .unwrap();
        let name: BdkName = "PIN".parse().unwrap();
        let id: BdkId = "FFFF987654".parse().unwrap();
        let device: DukptDeviceId = "19087".parse().unwrap();
        db.execute(
            "INSERT INTO t VALUES (?1, ?2, ?3)",
            rusqlite::params![name, id, device],
        )
        .unwrap();
        let (read_name, read_id, number): (BdkName, BdkId, i64) = db
            .query_row("SELECT name, id, device FROM t", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .unwrap();
        assert_eq!((read_name, read_id, number), (name, id, 0x19087));
        db.execute_batch("UPDATE t SET name = 'pin', id = '1234'")
            .unwrap();
        assert!(
            db.query_row("SELECT name FROM t", [], |row| row.get::<_, BdkName>(0))
                .is_err()
        );
        assert!(
            db.query_row("SELECT id FROM t", [], |row| row.get::<_, BdkId>(0))
                .is_err()
        );
    }
}
