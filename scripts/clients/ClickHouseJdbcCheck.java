// Query a statepipe site's ClickHouse HTTP interface with ClickHouse's JDBC driver
// (com.clickhouse:clickhouse-jdbc, the v2 driver), as a JDBC tool such as DBeaver would:
//
//	java -cp 'LIBS/*' ClickHouseJdbcCheck.java URL PASSWORD
//
// Prints one JSON object: the driver's version, the compliance per update of the report view
// v_update_compliance_status read through a PreparedStatement's ResultSet, how long that query
// took through the driver, the database metadata a tool reads on connecting (its tables), and
// the SQLException a refused write surfaced as. The Go test (cmd/statepipe/chhttp_e2e_test.go)
// compares the numbers with the site's own compliance report.

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

public class ClickHouseJdbcCheck {
    static String quote(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:clickhouse:" + args[0] + "/default";
        Properties props = new Properties();
        props.setProperty("user", "default");
        props.setProperty("password", args[1]);
        List<String> out = new ArrayList<>();
        try (Connection conn = DriverManager.getConnection(url, props)) {
            out.add("\"client\":\"clickhouse-jdbc\"");
            out.add("\"version\":" + quote(conn.getMetaData().getDriverVersion()));
            out.add("\"server\":" + quote(conn.getMetaData().getDatabaseProductVersion()));
            String query = "SELECT update_id, countIf(state = 3) AS installed, countIf(state = 2) AS required, "
                    + "countIf(state = 1) AS not_required, countIf(state = 0) AS unknown "
                    + "FROM v_update_compliance_status GROUP BY update_id ORDER BY update_id";
            long start = System.nanoTime();
            List<String> rows = new ArrayList<>();
            try (PreparedStatement ps = conn.prepareStatement(query); ResultSet rs = ps.executeQuery()) {
                while (rs.next()) {
                    rows.add("[" + quote(rs.getString("update_id")) + "," + rs.getLong("installed") + "," + rs.getLong("required")
                            + "," + rs.getLong("not_required") + "," + rs.getLong("unknown") + "]");
                }
            }
            out.add("\"latency_ms\":" + String.format("%.2f", (System.nanoTime() - start) / 1e6));
            out.add("\"rows\":[" + String.join(",", rows) + "]");
            // What a tool's navigator reads: the tables and views of the database.
            List<String> tables = new ArrayList<>();
            try (ResultSet rs = conn.getMetaData().getTables(null, null, "v_update_compliance%", null)) {
                while (rs.next()) {
                    tables.add(quote(rs.getString("TABLE_NAME")));
                }
            } catch (SQLException e) {
                tables.add(quote("error: " + e.getMessage()));
            }
            out.add("\"tables\":[" + String.join(",", tables) + "]");
            String[][] refused = {{"write_refused", "INSERT INTO ref_updates (id, title) VALUES ('X', 'written')"},
                    {"drop_refused", "DROP TABLE ref_updates"}};
            for (String[] r : refused) {
                try (Statement st = conn.createStatement()) {
                    st.execute(r[1]);
                    out.add("\"" + r[0] + "\":null");
                } catch (SQLException e) {
                    out.add("\"" + r[0] + "\":" + quote(e.getClass().getSimpleName() + " code " + e.getErrorCode() + ": " + e.getMessage()));
                }
            }
        }
        System.out.println("{" + String.join(",", out) + "}");
    }
}
