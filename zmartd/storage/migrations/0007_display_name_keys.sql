-- Display names are unique by their confusable skeleton, computed by the API
-- (zmartd/api/text.py: "Аlice" with a Cyrillic A, "al<ZWJ>ice" and "ALICE" are one name),
-- not by lower(display_name), which let look-alikes and invisible characters through.

ALTER TABLE users ADD COLUMN display_name_key text;
-- existing names: the closest the database can compute (case and compatibility forms)
UPDATE users SET display_name_key = lower(normalize(display_name, NFKC))
 WHERE display_name IS NOT NULL;
ALTER TABLE users ADD CONSTRAINT users_display_name_key_set
    CHECK ((display_name IS NULL) = (display_name_key IS NULL));
DROP INDEX users_display_name;
CREATE UNIQUE INDEX users_display_name_key ON users (display_name_key);
